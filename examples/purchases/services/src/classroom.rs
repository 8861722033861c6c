//! The classroom service: students, the courses they are enrolled in.

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, EmptyMutation, EmptySubscription, Object, Result, Schema, SimpleObject, ID,
};

pub type ClassroomSchema = Schema<Query, EmptyMutation, EmptySubscription>;

#[derive(Clone, SimpleObject)]
pub struct Course {
    pub id: ID,
    pub title: String,
}

/// A student of the classroom.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct Student {
    pub id: ID,
    pub name: String,
}

/// A student's place in a course.
#[derive(Clone, SimpleObject)]
pub struct Enrollment {
    pub course: Course,
}

struct Data {
    students: Vec<Student>,
    courses: Vec<Course>,
    /// (student, course)
    enrollments: Vec<(&'static str, &'static str)>,
}

impl Data {
    fn seeded() -> Data {
        let students = [("s1", "Ada Lovelace"), ("s2", "Grace Hopper")]
            .into_iter()
            .map(|(id, name)| Student { id: ID::from(id), name: name.to_owned() })
            .collect();
        let courses = [("c1", "GraphQL 101"), ("c2", "Event Streams")]
            .into_iter()
            .map(|(id, title)| Course { id: ID::from(id), title: title.to_owned() })
            .collect();
        Data { students, courses, enrollments: vec![("s1", "c1"), ("s1", "c2"), ("s2", "c2")] }
    }
}

pub struct Query;

#[Object]
impl Query {
    async fn students(&self, ctx: &Context<'_>) -> Result<Vec<Student>> {
        Ok(ctx.data::<Arc<Data>>()?.students.clone())
    }

    #[graphql(entity)]
    async fn find_student_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Student>> {
        Ok(ctx.data::<Arc<Data>>()?.students.iter().find(|student| student.id == id).cloned())
    }
}

#[ComplexObject]
impl Student {
    async fn enrollments(&self, ctx: &Context<'_>) -> Result<Vec<Enrollment>> {
        let data = ctx.data::<Arc<Data>>()?;
        Ok(data
            .enrollments
            .iter()
            .filter(|(student, _)| *student == self.id.as_str())
            .filter_map(|(_, course)| data.courses.iter().find(|c| c.id.as_str() == *course).cloned())
            .map(|course| Enrollment { course })
            .collect())
    }
}

pub fn schema() -> ClassroomSchema {
    Schema::build(Query, EmptyMutation, EmptySubscription).data(Arc::new(Data::seeded())).enable_federation().finish()
}
